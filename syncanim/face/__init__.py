"""Face analysis shared by prep, training and evaluation: measures computed from face landmarks."""
