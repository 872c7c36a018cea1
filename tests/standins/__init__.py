"""Local HTTPS stand-ins of the Azure services the handler talks to, for tests.

No Azure service is reachable where the tests run, so the real executable is
pointed at these instead. They validate requests as strictly as the real
services (where a behaviour is inferred rather than documented, the module
says so) and let tests inject faults and read what the client sent.

Modules:
- stack.py: start everything, get the handler's settings (`Stack().env()`);
- __main__.py: the same for shell scripts (`python3 -m tests.standins --state F`);
- entra.py, msi.py: Entra ID token endpoint, managed identity endpoint;
- arm.py, aml.py: ARM (workspace lookup), AML discovery / run history / metrics;
- ingestion.py (+ telemetry.py, swagger.py): App Insights ingestion;
- directory.py: the shared tenant (apps, identities, roles, issued tokens);
- fixtures.py, fixtures/runs.json: workspaces and runs (the sample pipeline);
- server.py, journal.py, faults.py: the HTTP(S) server, its request journal,
  fault injection; tls.py: throwaway CA and certificates; assertion.py: JWTs.
"""
