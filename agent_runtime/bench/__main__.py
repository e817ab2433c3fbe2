from agent_runtime.bench.runner import main

main()
