"""Entry script: `python benchmarks/run.py --calls 1,10,50` (same as `agent-runtime bench`).

The harness lives in agent_runtime/bench so the installed CLI has it; results go to
benchmarks/results/. See benchmarks/README.md.
"""

from agent_runtime.bench.runner import main

if __name__ == "__main__":
    main()
