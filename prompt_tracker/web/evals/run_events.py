"""Socket.IO: a run page's socket joins the run's room, to hear ``eval.result`` and ``eval.run`` as they happen.

The socket was admitted by the playground's ``connect`` handler (a stored session, signed in where
sign-in is on); a run belongs to the team's prompts, so any admitted socket may follow any run.
"""

from flask_socketio import join_room

from ...evals.models import EvalRun
from ...extensions import db, socketio
from ...replies.eval_runs import is_row_id, run_room_id
from ...replies.live import room_for


@socketio.on("eval.join")
def join_run(data=None):
    """Join the room of run ``data["run"]``; answer whether it exists (an unknown run joins nothing)."""
    raw = data.get("run") if isinstance(data, dict) else None
    if isinstance(raw, bool) or not is_row_id(raw) or db.session.get(EvalRun, int(str(raw))) is None:
        return False
    join_room(room_for(run_room_id(int(str(raw)))))
    return True
