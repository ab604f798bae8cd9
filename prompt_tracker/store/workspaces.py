"""A signed-in user's workspace: the record of their work shared by all their browsers, and how a
visitor's work joins it at sign-in.

The workspace is a blob like a session's (settings, the names of the conversations, Compare and
Replay choices) under the user's workspace id (``domain.keys.workspace_id``), its conversation lists
beside it in the same layout. ``store.session_interface`` attaches it to a signed-in session, which
hands it every key that is not the browser's own (``BROWSER_KEYS``), and saves it with the session.
"""

import copy

from werkzeug.datastructures import CallbackDict

from ..domain.keys import companion_playground
from .conversations import ConversationStore
from .tickets import move_open_replies

EARLIER = "earlier"  # workspace key: per playground, the settings of a conversation kept from before sign-in
EARLIER_KIND = "earlier"  # its conversation: "<playground>~earlier" (see ``adopt``)


class LoadedOnUse:
    """Dict operations that read the stored data first (``ensure_loaded``), and may hand some keys to
    another record (``elsewhere``: a signed-in session's work goes to its workspace)."""

    def ensure_loaded(self) -> None:
        raise NotImplementedError

    def elsewhere(self, key):
        """The record that holds ``key`` instead of this one, or None."""
        return None

    def playgrounds(self) -> list[str]:
        """Names of the playgrounds that have a conversation here."""
        return list(self.get("conversations", {}))

    def add_playground(self, playground: str) -> None:
        """Record that ``playground`` has a conversation (marks the record modified once)."""
        if playground not in self.playgrounds():
            self["conversations"] = {**self.get("conversations", {}), playground: 1}

    # Every dict operation loads first. ``dict`` itself is read by the serializer only after
    # ensure_loaded(), in save_session. Operations on one key go where the key lives; the others
    # (iteration, items, len, clear) see this record's own keys only.
    def __getitem__(self, key):
        self.ensure_loaded()
        other = self.elsewhere(key)
        return other[key] if other is not None else super().__getitem__(key)

    def __setitem__(self, key, value):
        self.ensure_loaded()
        other = self.elsewhere(key)
        if other is not None:
            other[key] = value
        else:
            super().__setitem__(key, value)

    def __delitem__(self, key):
        self.ensure_loaded()
        other = self.elsewhere(key)
        if other is not None:
            del other[key]
        else:
            super().__delitem__(key)

    def __contains__(self, key):
        self.ensure_loaded()
        self.accessed = True
        other = self.elsewhere(key)
        return key in other if other is not None else super().__contains__(key)

    def __iter__(self):
        self.ensure_loaded()
        return super().__iter__()

    def __len__(self):
        self.ensure_loaded()
        return super().__len__()

    def __bool__(self):
        self.ensure_loaded()
        return super().__bool__()

    def get(self, key, default=None):
        self.ensure_loaded()
        other = self.elsewhere(key)
        return other.get(key, default) if other is not None else super().get(key, default)

    def setdefault(self, key, default=None):
        self.ensure_loaded()
        other = self.elsewhere(key)
        return other.setdefault(key, default) if other is not None else super().setdefault(key, default)

    def pop(self, key, *default):
        self.ensure_loaded()
        other = self.elsewhere(key)
        return other.pop(key, *default) if other is not None else super().pop(key, *default)

    def popitem(self):
        self.ensure_loaded()
        return super().popitem()

    def update(self, *args, **kwargs):
        self.ensure_loaded()
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def clear(self):
        self.ensure_loaded()
        return super().clear()

    def keys(self):
        self.ensure_loaded()
        return super().keys()

    def items(self):
        self.ensure_loaded()
        return super().items()

    def values(self):
        self.ensure_loaded()
        return super().values()

    def copy(self):
        self.ensure_loaded()
        return dict(super().items())


class Workspace(LoadedOnUse, CallbackDict):
    """A signed-in user's work, shared by all their browsers: a blob like a session's (settings, the names
    of the conversations, Compare and Replay choices) under the user's workspace id, loaded on first use.

    Saved with the session that uses it (``PlaygroundSessionMixin.save_session``): what changed is
    merged into the stored blob, so two browsers saving different things keep both.
    """

    def __init__(self, workspace_store_id: str, loader):
        def on_update(record) -> None:
            record.modified = True
            record.accessed = True

        self._loader = None
        super().__init__(None, on_update)
        self.store_id = workspace_store_id
        self._loader = loader
        self.original: dict = {}
        self.stored = False
        self.modified = False
        self.accessed = False
        self.expiry_refreshed = False

    @property
    def loaded(self) -> bool:
        """Whether the stored data has been read."""
        return self._loader is None

    def ensure_loaded(self) -> None:
        """Read the stored data now, if not done yet."""
        if self._loader is None:
            return
        loader, self._loader = self._loader, None
        self.accessed = True
        self.set_loaded(loader())

    def set_loaded(self, data: dict | None) -> None:
        """Take ``data`` as what is stored (read here, or in passing by a window's read)."""
        self._loader = None
        if data is None:
            return
        self.stored = True
        self.original = copy.deepcopy(data)
        dict.update(self, data)


def adopt(conversations: ConversationStore, session) -> list[str]:
    """Move a signed-in session's own work into its workspace (a visitor signing in); return the playgrounds
    whose conversation was kept as an earlier copy.

    A playground the user has no conversation for receives the visitor's (with its Compare and
    Replay). Where the user already has one, theirs stays and the visitor's is kept beside it as
    ``<playground>~earlier`` (its settings under ``earlier``), which the page offers as an export to
    download and import. Saved settings of the user are never overwritten: the visitor's fill only
    playgrounds the user has none for.
    """
    workspace = session.workspace
    own, target = session.own_store_id, workspace.store_id
    work = session.own_work()
    names = list(work.get("conversations", {}))
    mains = dict.fromkeys(name.split("~", 1)[0] for name in names)
    taken = set(workspace.playgrounds())
    kept = [
        main
        for main in mains
        if conversations.count(own, main) and (main in taken or conversations.count(target, main))
    ]
    moves = {}
    for name in names:
        main, _, kind = name.partition("~")
        if main not in kept:
            if name not in taken and not conversations.count(target, name):
                moves[name] = name
            continue
        if kind:  # a Compare or Replay of a conversation kept as a copy: the copy is what counts
            conversations.clear(own, name, stop_seconds=conversations.open_seconds)
            continue
        conversations.clear(own, name, stop_seconds=conversations.open_seconds, keep_conversation=True)
        moves[name] = companion_playground(name, EARLIER_KIND)
    move_open_replies(own, target)
    conversations.adopt(own, target, moves)
    for name, new_name in moves.items():
        workspace.add_playground(new_name)
    for key, value in work.items():
        if key == "conversations":
            continue
        if key == "settings" and isinstance(value, dict):
            earlier = {main: value[main] for main in kept if main in value}
            if earlier:
                workspace[EARLIER] = {**workspace.get(EARLIER, {}), **earlier}
        if isinstance(value, dict):
            mine = workspace.get(key, {})
            if not isinstance(mine, dict):
                continue
            added = {
                name: item for name, item in value.items() if name not in mine and name.split("~", 1)[0] not in kept
            }
            if added:
                workspace[key] = {**mine, **added}
        elif key not in workspace:
            workspace[key] = value
    session.drop_own_work()
    return kept
