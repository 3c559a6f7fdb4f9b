"""Studies built on many simulated steps: sweeps (:mod:`.sweeps`), plan search
(:mod:`.search`) and checking (:mod:`.check`), what-if and trend projection
(:mod:`.whatif`), validation against published runs (:mod:`.validate`) and plots
(:mod:`.plots`). Modules are imported by name; nothing is loaded here."""
