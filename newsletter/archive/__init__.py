"""The back catalogue: posts brought in from a feed or an export, and the blog feed polled."""
