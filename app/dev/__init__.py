"""Development tools, apart from the product: the local GitHub simulator, the scripted Anthropic server, the
local world that wires them to Otto, and ``otto demo``. Otto's own code never imports this package (the
import linter says so); the CLI's ``demo`` command and the tests and benchmarks do."""
