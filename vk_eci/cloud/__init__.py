"""Cloud side: the ECI SDK client, Pod→ECI translation, ECI→status mapping, the spec table."""
