"""What a campaign says: the terminal and JSON reports, standalone repro scripts, the conformance table."""
