"""Warm runs: ``sandpool serve`` keeps sandpool loaded; ``sandpool run`` hands it its command
line and stdio over a unix socket instead of starting Python's imports and config anew."""
