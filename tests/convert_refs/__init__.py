"""Reference implementations of other tools' parameter matching, written from their
sources (each module names the version and the file and function it follows): what the
converted policies are compared with."""
