"""`smeter verify`: prove a meter's 30-minute values against an exact host reference.

reference.py  the exact reference (fractions.Fraction), written apart from edge/integrator.py
compare.py    per-slot comparison, tolerance, exclusions and the verdict
report.py     the certifier's report: HTML page, PNG charts, per-slot CSV
"""
