"""The pure translation core: typed events in, typed actions out. No I/O, no clock."""
