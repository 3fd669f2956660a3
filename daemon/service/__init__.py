"""The daemon process: `statecast serve`, one pipeline per [[streams]] entry, housekeeping."""
