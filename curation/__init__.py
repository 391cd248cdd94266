"""playmill curation package (see DESIGN.md section 1)."""
