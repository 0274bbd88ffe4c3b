"""vpnctl's URLs plus one view that fails, for the 500 page's tests."""

from django.urls import path

from vpnctl.urls import urlpatterns as site_urlpatterns


def boom(request):
    raise RuntimeError("something broke")


urlpatterns = [*site_urlpatterns, path("boom/", boom)]
