"""Reaching user-supplied URLs: the URL guard (url_guard) and the input downloader (download)."""
