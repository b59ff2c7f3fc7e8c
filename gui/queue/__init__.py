"""The run queue's page (/queue), its line in every page's header, and the texts they show."""
