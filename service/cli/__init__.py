"""The `airlock` command line: data on stdout, logs on stderr, a clear message and exit 2 on bad input."""
