"""The simulator's WSGI app: control endpoints plus one blueprint per wire protocol."""
from __future__ import annotations

from flask import Flask, jsonify, request

from app.simulator.anthropic_api import bp as anthropic_bp
from app.simulator.gemini_api import bp as gemini_bp
from app.simulator.openai_api import bp as openai_bp
from app.simulator.state import Fault, SimulatorState
from app.simulator.wire import sim_state


def create_simulator(state: SimulatorState | None = None) -> Flask:
    """Build a simulator app around a fault registry and request log."""
    sim = Flask("waybill-simulator")
    sim.config["SIM_STATE"] = state or SimulatorState()
    for blueprint in (openai_bp, anthropic_bp, gemini_bp):
        sim.register_blueprint(blueprint)

    @sim.put("/_control/faults/<channel>")
    def set_fault(channel: str):
        try:
            fault = Fault.from_dict(request.get_json(force=True) or {})
        except (TypeError, ValueError) as exc:
            return jsonify(error=str(exc)), 400
        sim_state().set_fault(channel, fault)
        return jsonify(channel=channel, fault=sim_state().faults().get(channel))

    @sim.delete("/_control/faults")
    def reset():
        sim_state().clear()
        return jsonify(ok=True)

    @sim.get("/_control/log")
    def log():
        return jsonify(sim_state().log(request.args.get("channel")))

    @sim.get("/_control/health")
    def health():
        return jsonify(ok=True)

    return sim
