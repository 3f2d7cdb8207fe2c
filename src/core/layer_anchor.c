/* Keeps every layer library non-empty while a layer has no sources of its own yet. */
int hearth_layer_anchor_unused;
