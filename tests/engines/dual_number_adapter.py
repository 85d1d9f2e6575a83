# The adapter file of dual_number.py: its class, its number and its tangent.
CLASS = "Dual"
DATA, TANGENT = "real", "dual"
