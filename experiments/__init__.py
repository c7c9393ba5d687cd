"""One runnable module per result of the paper: ``python -m experiments.NAME [--full | --extra-small]``."""
