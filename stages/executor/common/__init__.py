"""The LiuMa case language core shared by the API, WEB and APP runners: comparators, typed parameters,
variables, templates, the function library, user scripts and the step log/result recorder."""
