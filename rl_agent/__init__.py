"""playmill rl_agent package (see DESIGN.md section 1)."""
