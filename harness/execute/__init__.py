"""Running an implementation's call safely: in process or in an isolated child, under a time limit,
with its output captured, the process state it changed undone, and a crash journal."""
