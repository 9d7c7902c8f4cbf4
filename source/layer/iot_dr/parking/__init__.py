"""Where events that cannot be applied are kept with their reason, and how operators list, replay and discard them:
the workflow's dead-letter table (``dead_letters``), the queues of the topic rules, capture and stream mapping
(``parked_queues``), and replay of both (``replay``)."""
