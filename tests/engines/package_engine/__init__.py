"""A learner's engine as a package: value.py imports its sibling relatively."""
