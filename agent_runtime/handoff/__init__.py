"""Human queues: handoff records, the embedded queue store, and the built-in handoff tool."""
