"""Where bytes go: local and gs:// paths, the workdir, array files."""
