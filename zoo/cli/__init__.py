"""The `zoo` command: commands.py parses and dispatches (and stays light, so
that `zoo list` starts no backend); jobs.py does the work of `zoo finetune`
and `zoo eval`; demo.py is `zoo demo`."""
