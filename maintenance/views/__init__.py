"""vpnctl's pages, one module per topic; ``maintenance/urls.py`` names each view by module.

- ``dashboard``: the home page; ``inventory``: connections, sync runs, preferences;
- ``changes``: asking for a change, one request, its decisions, the request lists;
- ``batches``: lifecycle control for many tunnels; ``history``: past changes per tunnel;
- ``audit``: the audit log and its exports; ``calendar``: the feed and the timeline;
- ``health``: ``/healthz/``, ``/healthz/worker/``; ``errors``: the sign-in lockout and CSRF
  failure pages; ``sso``: the login page and single sign-on's start and callback;
- ``helpers``: what the others share.
"""
