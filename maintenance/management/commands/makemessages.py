"""``makemessages`` that also knows ``N_``: vpnctl marks the sentences it stores for later
(texts.Text) with ``gettext_noop`` imported as ``N_``."""

from django.core.management.commands import makemessages


class Command(makemessages.Command):
    xgettext_options = [*makemessages.Command.xgettext_options, "--keyword=N_"]
