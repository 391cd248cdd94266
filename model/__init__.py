"""playmill model package (see DESIGN.md section 1)."""
