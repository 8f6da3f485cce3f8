# Copyright 2018-2026 Polyaxon, Inc. Licensed under the Apache License, Version 2.0.
# Vendored from https://github.com/polyaxon/polyaxon-examples, tracking/plotly/confusion_matrix.py at commit 87f10d4eb9d7d28f4f27db088b6e443419e1f4ae;
# only the import lines changed (polyaxon -> polytrack). See ../README.md.
# ruff: noqa

from polytrack import tracking

tracking.init(project="demo", tags=["examples"])
tracking.log_confusion_matrix(
    name="confusion",
    z=[[0.1, 0.3, 0.5, 0.2], [1.0, 0.8, 0.6, 0.1], [0.1, 0.3, 0.6, 0.9], [0.6, 0.4, 0.2, 0.2]],
    x=['healthy', 'multiple diseases', 'rust', 'scab'],
    y=['healthy', 'multiple diseases', 'rust', 'scab'],
    step=1,
)
