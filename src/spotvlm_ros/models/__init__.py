"""Edge model backends behind one small base class."""
