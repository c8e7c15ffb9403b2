"""Screening lists of a hotline (黑名单/白名单/地区屏蔽), pasted in bulk."""
