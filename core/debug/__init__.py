"""The debugger's half of core: program files, the Session, Recordings and their files."""
