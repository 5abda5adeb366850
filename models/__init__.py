"""cvstream model families: network definitions, synthesizers, training and export."""
