"""Call records (通话清单): the REST API and the list page."""
