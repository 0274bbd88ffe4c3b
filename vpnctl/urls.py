"""vpnctl's URLs: the app, the admin, login and logout, single sign-on, the language switch."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

from maintenance.api import api, not_found
from maintenance.forms.signin import AdminLoginForm
from maintenance.views import sso
from maintenance.views.health import healthz, healthz_worker

# The admin's password form obeys VPNCTL_LOCAL_LOGIN too (break-glass for superusers).
admin.site.login_form = AdminLoginForm

urlpatterns = [
    path("", include("maintenance.urls")),
    path("login/", sso.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # Single sign-on (maintenance/sso.py): always routed, 404 while VPNCTL_OIDC_ISSUER is
    # unset. The names are mozilla-django-oidc's; the provider's redirect URI is the callback.
    path("oidc/authenticate/", sso.authenticate, name="oidc_authentication_init"),
    path("oidc/callback/", sso.callback, name="oidc_authentication_callback"),
    path("admin/", admin.site.urls),
    # The JSON API and its schema (maintenance/api/).
    path("api/v1/", api.urls),
    re_path(r"^api/v1/(?P<rest>.*)$", not_found, name="api_not_found"),
    path("healthz/", healthz, name="healthz"),
    path("healthz/worker/", healthz_worker, name="healthz_worker"),
    # set_language: the header's language selector posts here.
    path("i18n/", include("django.conf.urls.i18n")),
]
