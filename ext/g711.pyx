# placeholder: the G.711 kernel lands here (issue 2)
