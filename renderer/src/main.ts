import { mount } from 'svelte';
import 'uplot/dist/uPlot.min.css';
import './app.css';
import App from './App.svelte';
import { Dashboard } from './lib/dashboard.svelte';

const dashboard = new Dashboard();
dashboard.start();
mount(App, { target: document.getElementById('app')!, props: { dashboard } });
