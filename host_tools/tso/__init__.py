"""TSO-side tools: the data model of resources, groups and balancing groups, group
management rules, baselines and imbalance correction (patterns 1/2/3 of seed 000:
docs/glossary.md#correction-patterns).

Modules: model (tables and loading), validate (group-management rules), baseline
(ERAB High 4 of 5, previous day), correction (the three patterns, vectorised), rounding
(exact micro-Wh to Wh), generate (synthetic data sets), config (rules with sources),
errors (typed errors). See docs/tso-data.md and docs/imbalance-correction.md.
"""
