"""Every outside system (ERPs, payment rails) behind one protocol; platform knowledge stays here."""
