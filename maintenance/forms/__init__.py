"""vpnctl's forms, one module per topic. Forms parse input; the queries live on QuerySets.

- ``inventory``: the connection list's filters;
- ``changes``: the request form, the window, decisions, cancelling, the request filters;
- ``batches``: the batch form and its decision; ``audit``: the audit log's filters;
- ``accounts``: the user's preferences and the admin's AWS account form;
- ``signin``: the password sign-in forms (the site's and the admin's).
"""
