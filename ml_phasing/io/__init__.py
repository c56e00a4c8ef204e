"""Files in and out: recognised by content (never unpickled), reflections, SHELX, maps, atomic writes."""
