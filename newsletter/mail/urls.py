"""Every URL a mail sends a reader to, and the List-Unsubscribe headers, from BASE_URL.

Mail is made outside any request (in workers, in the send loop), so it cannot ask Flask's
``url_for``; the paths the web app routes (web/public.py, web/manage.py, web/archive.py) are
spelled here once instead. No Flask and no signing here: callers sign the token
(subscribers/links.py) and this says where it goes, so the delivery engine can use it too.
"""

from __future__ import annotations

from dataclasses import dataclass

# What a preview shows for a reader's links: clearly no one's, landing on the bad-link page.
SAMPLE_TOKEN = "sample-token"
LIST_UNSUBSCRIBE = "List-Unsubscribe"
LIST_UNSUBSCRIBE_POST = "List-Unsubscribe-Post"
# RFC 8058: a POST to the List-Unsubscribe URL with this body unsubscribes in one click.
ONE_CLICK = "List-Unsubscribe=One-Click"


@dataclass(frozen=True)
class ReaderLinks:
    """Build the absolute URLs in a reader's mail from ``base_url`` (BASE_URL, no end slash)."""

    base_url: str

    @property
    def home(self) -> str:
        """Return the sign-up page's URL."""
        return self.base_url + "/"

    @property
    def archive(self) -> str:
        """Return the archive's URL."""
        return self.base_url + "/archive"

    def issue(self, slug: str) -> str:
        """Return the URL of one issue's page in the archive."""
        return f"{self.base_url}/archive/{slug}"

    def confirm(self, token: str) -> str:
        """Return the link that confirms a sign-up (a confirm token)."""
        return f"{self.base_url}/confirm/{token}"

    @property
    def unsubscribe_prefix(self) -> str:
        """Return every unsubscribe link up to its token: the send path splices tokens in."""
        return self.base_url + "/unsubscribe/"

    def unsubscribe(self, token: str) -> str:
        """Return the link that unsubscribes a reader (an unsubscribe token)."""
        return self.unsubscribe_prefix + token

    @property
    def manage_prefix(self) -> str:
        """Return every link to a reader's own page up to its token."""
        return self.base_url + "/manage/"

    def manage(self, token: str) -> str:
        """Return the link to a reader's own page (a manage token)."""
        return self.manage_prefix + token

    def manage_address(self, token: str) -> str:
        """Return the link that makes a new address a reader's (an address token)."""
        return f"{self.base_url}/manage/address/{token}"

    @property
    def sample_unsubscribe(self) -> str:
        """Return the unsubscribe link a preview shows: no one's, harmless to follow."""
        return self.unsubscribe(SAMPLE_TOKEN)

    @property
    def sample_manage(self) -> str:
        """Return the link to a reader's page that a preview shows: no one's."""
        return self.manage(SAMPLE_TOKEN)

    def list_unsubscribe_headers(self, token: str) -> dict[str, str]:
        """Return the List-Unsubscribe and one-click List-Unsubscribe-Post headers for a mail."""
        return {
            LIST_UNSUBSCRIBE: f"<{self.unsubscribe(token)}>",
            LIST_UNSUBSCRIBE_POST: ONE_CLICK,
        }
