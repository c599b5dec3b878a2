"""The shell: the `reglament` command, the one-machine runner and the web entry point."""
