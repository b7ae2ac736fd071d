"""The thin slixmpp layer: stanzas to handler calls, actions to stanzas."""
