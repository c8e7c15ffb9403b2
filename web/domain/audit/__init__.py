"""The audit log (审计日志): who logged in, who changed what, when and from where."""
