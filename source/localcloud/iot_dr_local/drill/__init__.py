"""``iot-dr drill``: the disaster-recovery drill on the local cloud, with measured RPO and RTO and a report.

``run`` orchestrates the drill, ``devices`` runs the simulated devices, ``figures`` turns observed events into the
report's figures, ``report`` writes ``drill.json``, ``drill.html`` and the terminal summary.
"""
