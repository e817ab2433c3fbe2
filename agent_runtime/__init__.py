"""agent_runtime: a real-time voice AI agent runtime for phone calls."""

__version__ = "0.1.0"
