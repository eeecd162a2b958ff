"""appusers: users of an App Services-style backend as reactive state machines."""
